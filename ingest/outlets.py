"""Readable outlet names from link hosts.

Outlet names are what users filter on ("only Reuters") and what citations show, so two links from one
publisher must map to one spelling. The map covers the hosts that dominate the AI-news digests we ingest;
anything else falls back to the bare host, which is stable if not pretty.
"""
from __future__ import annotations

from urllib.parse import urlsplit

OUTLETS: dict[str, str] = {
    # general and business news
    "nytimes.com": "The New York Times",
    "reuters.com": "Reuters",
    "bloomberg.com": "Bloomberg",
    "news.bloomberglaw.com": "Bloomberg Law",
    "cnbc.com": "CNBC",
    "bbc.com": "BBC",
    "bbc.co.uk": "BBC",
    "wsj.com": "The Wall Street Journal",
    "ft.com": "Financial Times",
    "washingtonpost.com": "The Washington Post",
    "cnn.com": "CNN",
    "axios.com": "Axios",
    "semafor.com": "Semafor",
    "theguardian.com": "The Guardian",
    "forbes.com": "Forbes",
    "fortune.com": "Fortune",
    "businessinsider.com": "Business Insider",
    "finance.yahoo.com": "Yahoo Finance",
    "scmp.com": "South China Morning Post",
    "apnews.com": "AP News",
    "nbcnews.com": "NBC News",
    "cbsnews.com": "CBS News",
    "abcnews.go.com": "ABC News",
    "npr.org": "NPR",
    "time.com": "TIME",
    "theatlantic.com": "The Atlantic",
    "newyorker.com": "The New Yorker",
    "economist.com": "The Economist",
    "vox.com": "Vox",
    "politico.com": "Politico",
    "thehill.com": "The Hill",
    "latimes.com": "Los Angeles Times",
    "telegraph.co.uk": "The Telegraph",
    "qz.com": "Quartz",
    "slate.com": "Slate",
    "theconversation.com": "The Conversation",
    "buzzfeednews.com": "BuzzFeed News",
    "fastcompany.com": "Fast Company",
    "hbr.org": "Harvard Business Review",
    "variety.com": "Variety",
    "hollywoodreporter.com": "The Hollywood Reporter",
    "rollingstone.com": "Rolling Stone",
    "theinformation.com": "The Information",
    "news.crunchbase.com": "Crunchbase News",
    "pymnts.com": "PYMNTS",
    "prnewswire.com": "PR Newswire",
    "businesswire.com": "Business Wire",
    # technology press
    "techcrunch.com": "TechCrunch",
    "theverge.com": "The Verge",
    "wired.com": "Wired",
    "wired.co.uk": "Wired",
    "arstechnica.com": "Ars Technica",
    "venturebeat.com": "VentureBeat",
    "technologyreview.com": "MIT Technology Review",
    "the-decoder.com": "The Decoder",
    "engadget.com": "Engadget",
    "zdnet.com": "ZDNET",
    "tomshardware.com": "Tom's Hardware",
    "tomsguide.com": "Tom's Guide",
    "spectrum.ieee.org": "IEEE Spectrum",
    "marktechpost.com": "MarkTechPost",
    "gizmodo.com": "Gizmodo",
    "vice.com": "Vice",
    "theregister.com": "The Register",
    "theregister.co.uk": "The Register",
    "cnet.com": "CNET",
    "thenextweb.com": "The Next Web",
    "404media.co": "404 Media",
    "futurism.com": "Futurism",
    "techradar.com": "TechRadar",
    "techrepublic.com": "TechRepublic",
    "siliconangle.com": "SiliconANGLE",
    "geekwire.com": "GeekWire",
    "mashable.com": "Mashable",
    "pcmag.com": "PCMag",
    "pcgamer.com": "PC Gamer",
    "electrek.co": "Electrek",
    "petapixel.com": "PetaPixel",
    "analyticsindiamag.com": "Analytics India Magazine",
    "therobotreport.com": "The Robot Report",
    "syncedreview.com": "Synced",
    "unite.ai": "Unite.AI",
    "maginative.com": "Maginative",
    "testingcatalog.com": "TestingCatalog",
    "interestingengineering.com": "Interesting Engineering",
    "fedscoop.com": "FedScoop",
    "nextgov.com": "Nextgov",
    "thegradient.pub": "The Gradient",
    "montrealethics.ai": "Montreal AI Ethics Institute",
    "onezero.medium.com": "OneZero",
    "medium.com": "Medium",
    "youtube.com": "YouTube",
    "youtu.be": "YouTube",
    # science and research
    "nature.com": "Nature",
    "science.org": "Science",
    "sciencemag.org": "Science",
    "arxiv.org": "arXiv",
    "newscientist.com": "New Scientist",
    "scientificamerican.com": "Scientific American",
    "quantamagazine.org": "Quanta Magazine",
    "sciencedaily.com": "ScienceDaily",
    "techxplore.com": "Tech Xplore",
    "phys.org": "Phys.org",
    "scitechdaily.com": "SciTechDaily",
    "statnews.com": "STAT",
    "fiercebiotech.com": "Fierce Biotech",
    "news.mit.edu": "MIT News",
    "hai.stanford.edu": "Stanford HAI",
    "popsci.com": "Popular Science",
    # AI companies and labs
    "openai.com": "OpenAI",
    "anthropic.com": "Anthropic",
    "blog.google": "Google",
    "ai.googleblog.com": "Google",
    "research.google": "Google",
    "deepmind.com": "Google DeepMind",
    "deepmind.google": "Google DeepMind",
    "ai.facebook.com": "Meta",
    "ai.meta.com": "Meta",
    "about.fb.com": "Meta",
    "huggingface.co": "Hugging Face",
    "blogs.nvidia.com": "NVIDIA",
    "nvidia.com": "NVIDIA",
    "blogs.microsoft.com": "Microsoft",
    "mistral.ai": "Mistral AI",
    "x.ai": "xAI",
    "skynettoday.com": "Skynet Today",
    "lastweekin.ai": "Last Week in AI",
}


def host_of(url: str) -> str:
    """Lower-case host without port, credentials or a leading www."""
    try:
        host = urlsplit((url or "").strip()).hostname or ""
    except ValueError:
        return ""
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def outlet_from_url(url: str) -> str:
    """The outlet's readable name: the most specific known host suffix wins, else the bare host.

    Suffix matching means edition.cnn.com and uk.finance.yahoo.com need no entries of their own.
    """
    host = host_of(url)
    labels = host.split(".")
    for i in range(len(labels) - 1):
        name = OUTLETS.get(".".join(labels[i:]))
        if name:
            return name
    return host

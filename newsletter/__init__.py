"""Trending Papers: a self-hosted, weekly, personalized trending-papers newsletter."""

__version__ = "0.1.0"

"""Enrichment of the lake with facts from outside the captures: IP owners (RDAP, offline ASN data)."""

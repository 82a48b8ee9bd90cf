"""Lake tables: the registry, bronze builders, and the only code that writes tables."""

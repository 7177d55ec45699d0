"""Command line: ``imatinib-cds <area> <command>``; each area registers its commands in its own module."""

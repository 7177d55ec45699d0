"""imatinib-cds: CDS Hooks decision support for imatinib TDM and dose adjustment."""

__version__ = "0.1.0"

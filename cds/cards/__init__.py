"""CDS Hooks cards and suggestions from a decision (no HTTP here)."""

from cds.cards.build import CardContext, build_cards

__all__ = ["CardContext", "build_cards"]

"""Explanation pages, the rule catalogue and concentration-time plots for reviewers."""

"""Issue rendering: article views to MJML/HTML and plain text, one variant per language."""

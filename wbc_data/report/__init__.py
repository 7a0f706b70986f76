"""Reports people read: Markdown + a self-contained HTML page (tables and PNG figures)."""

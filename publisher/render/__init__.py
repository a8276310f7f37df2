"""Pure renderers: records (+ settings, templates) in, text or bytes out."""

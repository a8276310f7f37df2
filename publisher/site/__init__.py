"""The site: `publisher.toml` → typed settings; event records (Markdown + YAML front matter) → `Record`; scaffold."""

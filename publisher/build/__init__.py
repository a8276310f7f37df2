"""`publisher build` and `check`: every output of a site, rendered and written where it changed."""

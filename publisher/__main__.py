from __future__ import annotations

from publisher.cli import main

main()

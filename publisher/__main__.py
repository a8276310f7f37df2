from __future__ import annotations

from publisher.cli.main import main

main()

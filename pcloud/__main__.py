"""Allow `python -m pcloud`."""

from pcloud.cli import main

main()

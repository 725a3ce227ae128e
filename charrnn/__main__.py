"""Run charrnn as ``python -m charrnn``."""
from charrnn.cli import main

main()

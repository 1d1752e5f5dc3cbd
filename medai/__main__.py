"""``python -m medai`` (also what ``torchrun -m medai train ...`` runs)."""

from medai.cli.main import main

main()

"""``python -m medai`` (also what ``torchrun -m medai train ...`` runs)."""

from medai.cli.main import main

if __name__ == "__main__":  # not when a spawned worker process (the service's inference process) imports it
    main()

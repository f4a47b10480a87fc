"""``python -m kdsharp`` (also what ``torchrun -m kdsharp`` runs)."""

from kdsharp.cli import run

if __name__ == "__main__":
    run()

"""`python -m reference.synth`: write a synthetic MURA-layout archive."""

from reference.synth.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

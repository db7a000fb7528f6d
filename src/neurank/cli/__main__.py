"""`python -m neurank.cli ...`: what torchrun launches, and what the malloc restart execs."""

from neurank.cli import main

main()

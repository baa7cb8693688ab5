"""Train an experiment: ``python train.py [group=option ...] [key=value ...]`` (the same as ``lit-train``)."""

from lit_vision.cli.train import main

if __name__ == "__main__":
    main()

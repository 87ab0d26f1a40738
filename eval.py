"""Evaluate a checkpoint on the test set: ``python eval.py ckpt_path=<checkpoint file or run dir>``."""

from resattn.cli.app import eval_main

if __name__ == "__main__":
    eval_main()

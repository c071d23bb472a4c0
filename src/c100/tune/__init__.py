"""Hyperparameter search of a model's recipe on the validation split, with Optuna (``c100 tune``).

    space.py    which TrainConfig fields a study searches and over which values (defaults per recipe)
    storage.py  where the study lives (a journal file in the study folder, or PostgreSQL/MySQL) and
                the lock that makes "count the trials, then start one" atomic across workers
    pruner.py   the median stopping rule, taken at the same fraction of each trial's schedule
    study.py    the study folder, the worker loop, one trial as one c100 run folder, the final result

Nothing here imports torch or optuna at import time of the package.
"""

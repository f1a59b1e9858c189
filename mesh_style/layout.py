"""The run folder: what a run leaves in ``hydra.run.dir`` (in a sweep, in each job's folder).

    result/          the finished result: meshes, textures, previews, metrics.json. It appears whole,
                     by one rename of a hidden staging folder (:func:`mesh_style.export.staged_outputs`)
    checkpoint.pt    the optimisation's state while the run is under way (``resume=true`` continues
                     from it); removed once ``result/`` exists
    error.txt        a sweep job's one-line error, instead of a result
    .hydra/, *.log   Hydra's record of the config, and the run's log
"""

RESULT_DIR = "result"
CHECKPOINT_FILE = "checkpoint.pt"
ERROR_FILE = "error.txt"

"""charrnn: character-level recurrent language models in pure NumPy.

The public Python API is what ``__all__`` lists; everything else is internal.

    import charrnn
    result = charrnn.train("corpus.txt", "model.npz", time="30s")
    model = charrnn.load("model.npz")
    print(model.sample(200, temp=0.8, seed=1))

The names load their modules on first use, so ``import charrnn`` itself
costs nothing (the CLI and scripts that only need one piece stay fast).
"""
__version__ = "0.1.0"

# public name -> the module that defines it (no typing import or TYPE_CHECKING block: both measurably slow the start)
_API = {
    "load": "charrnn.model",
    "Model": "charrnn.model",
    "ModelInfo": "charrnn.model",
    "Prediction": "charrnn.model",
    "PerChar": "charrnn.model",
    "Score": "charrnn.score",
    "train": "charrnn.trainer",
    "TrainOptions": "charrnn.options",
    "TrainResult": "charrnn.trainer",
    "StepEvent": "charrnn.events",
    "CharRNNError": "charrnn.errors",
}

__all__ = sorted(_API) + ["__version__"]

def __getattr__(name: str):
    if name in _API:
        module = __import__(_API[name], fromlist=[name])
        value = getattr(module, name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'charrnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))

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

# public name -> the module that defines it
_API = {
    "load": "charrnn.trained",
    "Model": "charrnn.trained",
    "ModelInfo": "charrnn.trained",
    "Prediction": "charrnn.trained",
    "PerChar": "charrnn.trained",
    "Score": "charrnn.score",
    "train": "charrnn.runs",
    "TrainOptions": "charrnn.runs",
    "TrainResult": "charrnn.runs",
    "StepEvent": "charrnn.training",
    "CharRNNError": "charrnn.errors",
}

__all__ = sorted(_API) + ["__version__"]

if False:  # pragma: no cover - what type checkers and editors see; importing typing would slow every start
    from charrnn.errors import CharRNNError
    from charrnn.runs import TrainOptions, TrainResult, train
    from charrnn.score import Score
    from charrnn.training import StepEvent
    from charrnn.trained import Model, ModelInfo, PerChar, Prediction, load


def __getattr__(name: str):
    if name in _API:
        module = __import__(_API[name], fromlist=[name])
        value = getattr(module, name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'charrnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))

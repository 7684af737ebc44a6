"""Train pipeline: ``train/val_crystals`` + parameters -> model items -> ``model`` checkpoint,
``training_metrics``, ``training_summary``.

Two nodes: ``training_items_node`` (records to model items, with the augmentation; td-data) and
``train_model_node`` (the training; torch and td-models only), the node the benchmarks' train stages run too.
"""

from kedro.pipeline import Pipeline, node

from pipelines.config import TRAIN_PARAMS
from pipelines.train.nodes import train_on_items, training_items


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                training_items,
                inputs=["train_crystals", "val_crystals", "params:model_config", "params:train_options"],
                outputs=["train_items", "val_items"],
                name="training_items_node",
            ),
            node(
                train_on_items,
                inputs={"train_items": "train_items", "val_items": "val_items", **TRAIN_PARAMS},
                outputs=["model", "training_metrics", "training_summary"],
                name="train_model_node",
            ),
        ]
    )

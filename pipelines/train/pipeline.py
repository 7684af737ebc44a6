"""Train pipeline: ``train/val_crystals`` + parameters -> ``model`` checkpoint, ``training_metrics``."""

from kedro.pipeline import Pipeline, node

from pipelines.train.nodes import train_model


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                train_model,
                inputs=[
                    "train_crystals",
                    "val_crystals",
                    "params:model_config",
                    "params:physics_config",
                    "params:training_config",
                    "params:train_options",
                ],
                outputs=["model", "training_metrics", "training_summary"],
                name="train_model_node",
            )
        ]
    )

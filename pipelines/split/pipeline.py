"""Split pipeline: ``labelled_crystals`` -> ``split`` ids + ``train/val/test_crystals``."""

from kedro.pipeline import Pipeline, node

from pipelines.split.nodes import split_crystals


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                split_crystals,
                inputs=["labelled_crystals", "params:split_options"],
                outputs=["split", "train_crystals", "val_crystals", "test_crystals"],
                name="split_crystals_node",
            )
        ]
    )

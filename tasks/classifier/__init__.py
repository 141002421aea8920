"""Kim (2014) CNN sentence classifier: data and vectoriser, the model and its embedding
variants, training with checkpoints, the stage's reports and predictions from the saved model."""

"""word2vec in TensorFlow: the model, its input pipeline, the training loop, evaluation
(analogies, WordSim-353), nearby/analogy queries and export formats. TensorFlow is imported by
the modules that need it, never by this package."""

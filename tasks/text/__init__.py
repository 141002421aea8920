"""Text processing shared by several stages: decoding files, Kim's clean_str normalisation,
and the vocabulary (built by the vocab stage; loaded by word2vec, export and cnn)."""

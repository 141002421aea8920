"""TensorFlow models: word2vec (word2vec.py, its input pipeline w2v_input.py) and Kim's CNN
(kim_cnn.py). Importing this package imports nothing heavy; each module loads TF itself."""

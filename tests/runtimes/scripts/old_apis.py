"""A 0.23-1-era training snippet: calls that today's scikit-learn removed."""

import sys

import joblib
import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import OneHotEncoder

X = np.array([[0.0, 1.0], [0.1, 1.1], [5.0, 5.0], [5.1, 4.9]])
labels = AgglomerativeClustering(n_clusters=2, affinity="euclidean", linkage="average").fit_predict(
    X
)
assert len(set(labels)) == 2
enc = OneHotEncoder(sparse=False).fit([["a"], ["b"], ["a"]])
assert enc.transform([["b"]]).tolist() == [[0.0, 1.0]]
names = list(enc.get_feature_names())
vocab = list(CountVectorizer().fit(["red fox", "blue fox"]).get_feature_names())
joblib.dump(enc, sys.argv[1])
print(names, vocab)

"""Train the iris classifier and write it next to the predictor (Cortex's classic first example).

Usage: python examples/iris/train.py [OUTPUT]   (default: examples/iris/model.pkl)
Cortex's trainer used LogisticRegression(multi_class="multinomial"); scikit-learn 1.7+ removed
that argument (multinomial is the default since 1.5), so it is left out here.
"""

import os
import pickle
import sys

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def main(output):
    iris = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=0.2, random_state=42, stratify=iris.target
    )
    model = LogisticRegression(solver="lbfgs", max_iter=1000)
    model.fit(x_train, y_train)
    print(f"accuracy on held-out data: {model.score(x_test, y_test):.3f}")
    tmp = f"{output}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        pickle.dump(model, f)
    os.replace(tmp, output)  # never leave a half-written model behind
    print(f"wrote {output}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.pkl"))

"""A local S3 (moto's server on a free 127.0.0.1 port) and tiny MLflow sklearn models for it."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from conftest import free_ports

# The sample of Cortex's mpg-estimator (test/apis/*/mpg-estimator/sample.json).
MPG_SAMPLE = {"cylinders": 4, "displacement": 135, "horsepower": 84, "weight": 2490, "acceleration": 15.7}
MPG_FEATURES = ["cylinders", "displacement", "horsepower", "weight", "acceleration"]


class MotoS3:
    def __init__(self, workdir):
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        server = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.log = open(os.path.join(workdir, "moto.log"), "w")
        self.process = subprocess.Popen(
            [server, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("moto_server did not start") from None
                time.sleep(0.2)
        import boto3

        self.client = boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def reset_bucket(self, bucket):
        existing = [b["Name"] for b in self.client.list_buckets().get("Buckets", [])]
        if bucket in existing:
            self.delete_prefix(bucket, "")
        else:
            self.client.create_bucket(Bucket=bucket)

    def upload_folder(self, folder, bucket, prefix):
        for root, _, files in os.walk(folder):
            for name in files:
                full = os.path.join(root, name)
                rel = os.path.relpath(full, folder).replace(os.sep, "/")
                self.client.upload_file(full, bucket, prefix.rstrip("/") + "/" + rel)

    def put(self, bucket, key, body):
        self.client.put_object(Bucket=bucket, Key=key, Body=body)

    def delete_prefix(self, bucket, prefix):
        listed = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        for item in listed:
            self.client.delete_object(Bucket=bucket, Key=item["Key"])

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def moto_s3(tmp_path_factory):
    pytest.importorskip("boto3")
    if not os.path.exists(os.path.join(os.path.dirname(sys.executable), "moto_server")):
        pytest.skip("moto[server] is not installed (pip install -e '.[dev]')")
    s3 = MotoS3(str(tmp_path_factory.mktemp("moto")))
    yield s3
    s3.stop()


def mpg_model(folder, offset):
    """An MLflow sklearn LinearRegression whose answers differ by `offset`; -> its answer for MPG_SAMPLE."""
    import mlflow.sklearn
    from sklearn.linear_model import LinearRegression

    rng = np.random.RandomState(0)
    x = rng.uniform(1, 300, size=(40, 5))
    y = x @ np.array([-0.5, -0.02, -0.05, -0.005, 0.2]) + 40 + offset
    model = LinearRegression().fit(x, y)
    shutil.rmtree(folder, ignore_errors=True)
    mlflow.sklearn.save_model(model, folder, serialization_format="pickle", pip_requirements=[])
    return float(model.predict([[MPG_SAMPLE[k] for k in MPG_FEATURES]])[0])

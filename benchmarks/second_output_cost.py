"""What the wire contract's second output (`content_type`) costs a hand-written model, over HTTP and gRPC.

    python benchmarks/second_output_cost.py [--reps 3] [--duration 3]

P1 divides tritonize by a hand-written model.py with one output; tritonize's echo answers two
(`response` and `content_type`: Triton returns every output when a client names none). This runs the
hand-written echo twice on plain tritonservers, as is and with the same second output, and measures
both at c=32 over HTTP (wrk) and gRPC (perf_analyzer) in interleaved rounds, with the server CPU per
request: the part of P1's gap that no runtime change can remove.
"""

import argparse
import contextlib
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import echo_rows  # noqa: E402
import harness  # noqa: E402
from recorder import Recorder, Target  # noqa: E402

ONE, TWO = "hand-written, one output", "hand-written, two outputs (+content_type)"


def two_output_repo(work):
    repo = os.path.join(work, "two")
    shutil.copytree(os.path.join(HERE, "projects", "handwritten"), repo)
    model = os.path.join(repo, "echo_raw")
    with open(os.path.join(model, "config.pbtxt"), "a") as f:
        f.write('output { name: "content_type" data_type: TYPE_STRING dims: [ 1 ] }\n')
    path = os.path.join(model, "1", "model.py")
    with open(path) as f:
        text = f.read()
    # The runtime's way: one prebuilt content-type tensor shared by every response (model.py's _content_type).
    old = 'responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("response", out)]))'
    assert old in text
    text = text.replace(
        old,
        "if self.content_type is None:\n"
        "                ct = np.empty((1, 1), dtype=np.object_)\n"
        '                ct[0, 0] = b"application/json"\n'
        '                self.content_type = pb_utils.Tensor("content_type", ct)\n'
        '            tensors = [pb_utils.Tensor("response", out), self.content_type]\n'
        "            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))",
    ).replace("class TritonPythonModel:\n", "class TritonPythonModel:\n    content_type = None\n\n")
    with open(path, "w") as f:
        f.write(text)
    return repo


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=int, default=3)
    args = parser.parse_args()
    rec = Recorder(args.reps, args.duration)
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="second-output-") as work, contextlib.ExitStack() as stack:
        one = os.path.join(work, "one")
        shutil.copytree(os.path.join(HERE, "projects", "handwritten"), one)
        targets = []
        for label, repo in ((ONE, one), (TWO, two_output_repo(work))):
            server, addresses = harness.plain_tritonserver(repo, tempfile.mkdtemp(dir=work))
            targets.append(Target(label, stack.enter_context(server), addresses, "echo_raw"))
        for _ in range(args.reps):
            for target in targets:
                rec.http(target, echo_rows.BODY, 32)
            for target in targets:
                rec.grpc(target, echo_rows.PAYLOAD, 32)
    print(f"\nmedians, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end:")
    for proto in ("HTTP", "gRPC"):
        ratio = rec.ratio(f"{TWO}, {proto} c=32", f"{ONE}, {proto} c=32")
        extra = {
            part: rec.overhead_us(f"{TWO}, {proto} c=32", f"{ONE}, {proto} c=32", field) / 1000
            for part, field in (("all", "cpu_us"), ("stub", "cpu_stub_us"), ("tritonserver", "cpu_tritonserver_us"))
        }
        print(
            f"  {proto}: two outputs ÷ one = {ratio:.2f}; server CPU a request +{extra['all']:.1f} µs "
            f"(stub +{extra['stub']:.1f}, tritonserver +{extra['tritonserver']:.1f})"
        )


if __name__ == "__main__":
    main()

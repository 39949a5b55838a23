"""A Spark MLlib logistic regression on a hub training set: run by the Spark virtualenv's
interpreter, never imported by the hub (``infra/spark.sh python``; the hub's lock holds no pyspark).

    <spark-venv>/bin/python ml/spark_job.py SPEC.json

Standard library and pyspark only: the file is all the job needs. Steps (numbered as in the code):
  1. start one Spark session (``spec["master"]``, ``local[2]`` by default; no UI);
  2. read the training set's Parquet file (one row per training-set row, in the manifest's order:
     ``row``, ``subject``, ``entity``, ``time_us``, ``label``, ``holdout``, ``f_0..f_n``) and
     recompute the manifest's digest from it (SHA-256 of each row's canonical JSON line, as
     ``ml.trainingset.rows_digest``); a different digest stops the job before any training;
  3. fit ``LogisticRegression`` on the rows outside the holdout, with class weights
     ``n / (2 n_class)`` (as scikit-learn's ``class_weight="balanced"``);
  4. predict the holdout with Spark's own model (probability of class 1 and the decision);
  5. save Spark's model (``model/``) and write ``result.json`` (coefficients, intercept, the
     holdout predictions, timings) last: its presence means success.
An error is printed as one ``HubJobError: ...`` line on stderr and the exit code is 3.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any


class HubJobError(Exception):
    pass


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def rows_digest(rows: list[Any], names: list[str]) -> str:
    h = hashlib.sha256()
    for r in rows:
        row = {
            "subject": r["subject"],
            "entity": r["entity"],
            "time_us": r["time_us"],
            "features": {name: r[f"f_{i}"] for i, name in enumerate(names)},
            "label": r["label"],
        }
        h.update(canonical(row).encode())
        h.update(b"\n")
    return h.hexdigest()


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import pyspark
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    spark = (  # 1.
        SparkSession.builder.master(spec["master"])
        .appName("hub-ml-train")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    seconds["session"] = round(time.monotonic() - t0, 3)
    try:
        t = time.monotonic()
        names: list[str] = list(spec["features"])
        df = spark.read.parquet(spec["input"])  # 2.
        rows = sorted(df.collect(), key=lambda r: r["row"])  # small: no distributed sort
        digest = rows_digest(rows, names)
        if digest != spec["digest"]:
            raise HubJobError(
                f"The training set file {spec['input']} has digest {digest}, not the manifest's "
                f"{spec['digest']}: it is not the training set the manifest describes; nothing "
                "was trained."
            )
        seconds["digest"] = round(time.monotonic() - t, 3)
        columns = [f"f_{i}" for i in range(len(names))]
        data = (
            VectorAssembler(inputCols=columns, outputCol="features")
            .transform(df.withColumn("y", F.col("label").cast("double")))
            .cache()
        )
        train = data.filter(~F.col("holdout"))
        n = train.count()
        positives = train.filter(F.col("label") == 1).count()
        if positives in (0, n):
            raise HubJobError(
                f"The training part has {positives} positive rows of {n}: both labels are needed."
            )
        w1, w0 = n / (2.0 * positives), n / (2.0 * (n - positives))
        train = train.withColumn("w", F.when(F.col("label") == 1, w1).otherwise(w0))
        params = spec["params"]
        t = time.monotonic()
        model = LogisticRegression(  # 3.
            featuresCol="features",
            labelCol="y",
            weightCol="w",
            family="binomial",
            regParam=float(params["reg_param"]),
            elasticNetParam=0.0,
            maxIter=int(params["max_iter"]),
            tol=float(params["tol"]),
            standardization=True,
            threshold=float(params["threshold"]),
        ).fit(train)
        seconds["fit"] = round(time.monotonic() - t, 3)
        t = time.monotonic()
        holdout = model.transform(data.filter(F.col("holdout")))  # 4.
        predicted = sorted(
            holdout.select("row", "probability", "prediction").collect(), key=lambda r: r["row"]
        )
        auc = None
        if predicted:
            labels = {r["label"] for r in data.filter(F.col("holdout")).select("label").collect()}
            if labels == {0, 1}:
                auc = BinaryClassificationEvaluator(
                    rawPredictionCol="rawPrediction", labelCol="y", metricName="areaUnderROC"
                ).evaluate(holdout)
        seconds["predict"] = round(time.monotonic() - t, 3)
        model.write().overwrite().save(spec["model_dir"])  # 5.
        return {
            "spark_version": pyspark.__version__,
            "digest": digest,
            "rows": len(rows),
            "train_rows": n,
            "class_weights": [w0, w1],
            "coefficients": [float(c) for c in model.coefficients],
            "intercept": float(model.intercept),
            "iterations": int(model.summary.totalIterations),
            "holdout": [
                [int(r["row"]), float(r["probability"][1]), float(r["prediction"])]
                for r in predicted
            ],
            "holdout_auc": auc,
            "seconds": seconds,
        }
    finally:
        spark.stop()


def main(argv: list[str]) -> int:
    spec_path = Path(argv[1])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    try:
        result = run(spec)
    except HubJobError as exc:
        print(f"HubJobError: {exc}", file=sys.stderr)
        return 3
    out = spec_path.with_name("result.json")
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

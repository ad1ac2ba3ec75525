"""Write the demo's data: a housing-like table (8 features, a price) as Parquet.

`houses()` is also the data samples/train_housing.py fits the shipped weights on."""
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def houses(rows: int = 20_000, seed: int = 0) -> pa.Table:
    """Columns f0..f7 (float32) and price, a log-linear function of f0 and f3 with noise."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 8)).astype(np.float32)
    price = np.exp(0.3 * features[:, 0] - 0.2 * features[:, 3] + 0.1 * rng.normal(size=len(features)))
    return pa.table({**{f"f{i}": features[:, i] for i in range(8)}, "price": price})


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "out/houses.parquet"
    table = houses()
    pq.write_table(table, path, row_group_size=5_000)
    print(f"wrote {path}: {table.num_rows:,} rows, columns {', '.join(table.column_names)}")

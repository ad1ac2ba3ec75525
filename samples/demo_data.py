"""Write the demo's data: a housing-like table (8 features, a price) as Parquet."""
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

path = sys.argv[1] if len(sys.argv) > 1 else "out/houses.parquet"
rng = np.random.default_rng(0)
features = rng.normal(size=(20_000, 8)).astype(np.float32)
price = np.exp(0.3 * features[:, 0] - 0.2 * features[:, 3] + 0.1 * rng.normal(size=len(features)))
table = pa.table({**{f"f{i}": features[:, i] for i in range(8)}, "price": price})
pq.write_table(table, path, row_group_size=5_000)
print(f"wrote {path}: {table.num_rows:,} rows, columns {', '.join(table.column_names)}")

"""Part of scripts/demo.sh: a point-in-time training set from the labels spine, printed."""

import pandas as pd

from featurehouse import FeatureStore

store = FeatureStore(".")
labels = pd.read_csv("seeds/driver_labels.csv", parse_dates=["event_timestamp"])
training = store.get_historical_features(entity_df=labels, features="driver_activity").to_df()
with pd.option_context("display.width", 160, "display.max_columns", 20):
    print(training.head(8).to_string(index=False))
print(f"{len(training)} rows (spine: {len(labels)}); rows without driver features (outside the 1d ttl): "
      f"{training['conv_rate'].isna().sum()}")

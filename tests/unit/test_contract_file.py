from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lowcarb.backends import FileProvider
from lowcarb.testing import ManualClock, ProviderContract


def write_wide(path: Path, freq: str = "h") -> Path:
    index = pd.date_range("2024-05-30", "2024-06-05", freq=freq, tz="UTC", inclusive="left")
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "datetime_utc": index.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "DE": rng.uniform(100, 600, len(index)).round(2),
            "GB": rng.uniform(50, 300, len(index)).round(2),
        }
    )
    frame.to_csv(path, index=False)
    return path


class TestFileContract(ProviderContract):
    now = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)
    zones = ["DE", "GB"]

    @pytest.fixture(autouse=True)
    def _data(self, tmp_path: Path) -> None:
        self.path = write_wide(tmp_path / "ci.csv")

    def make_provider(self, clock: ManualClock) -> FileProvider:
        return FileProvider(self.path, clock=clock)


class TestFileQuarterHourContract(TestFileContract):
    @pytest.fixture(autouse=True)
    def _data(self, tmp_path: Path) -> None:
        self.path = write_wide(tmp_path / "ci15.csv", freq="15min")

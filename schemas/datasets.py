"""Column layouts of the CSV files delaycast reads and writes (documented in the README).

History CSV: one booking per row with its actual delay; times are ISO 8601 with an offset.
Weather history CSV: one observation per station and hour; ``observed_at`` is the start of the
hour, in ISO 8601 with an offset; units as in :class:`schemas.weather.Weather`.
"""

HISTORY_COLUMNS: tuple[str, ...] = (
    "booking_id",
    "created_at",
    "scheduled_pickup_at",
    "pickup_lat",
    "pickup_lon",
    "dropoff_lat",
    "dropoff_lon",
    "vehicle_type",
    "patient_priority",  # may be empty
    "actual_delay_minutes",
)

WEATHER_COLUMNS: tuple[str, ...] = (
    "observed_at",
    "lat",
    "lon",
    "temperature_c",
    "precipitation_mm_h",
    "wind_m_s",
    "visibility_m",
    "humidity_pct",
    "condition",
)

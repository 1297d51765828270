"""Operations monitoring: daily statistics of every collector and merge run (SpotLake's test environment
recorded them by hand)."""

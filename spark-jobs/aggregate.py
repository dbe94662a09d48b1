"""spark-submit entry point of the aggregation job; the logic lives in ``emostream.aggregate``."""

from emostream.aggregate.job import main

if __name__ == "__main__":
    main()

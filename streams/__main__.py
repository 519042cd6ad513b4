from streams.operate.cli.main import main

# Guarded: the prediction engine's process (spawned by multiprocessing) imports this module under
# another name, and must not run the CLI again.
if __name__ == "__main__":
    main()

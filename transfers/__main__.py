from transfers.cli import main

main()

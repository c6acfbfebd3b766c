from syncreel.cli import main

main()

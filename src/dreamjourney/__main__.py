from dreamjourney.cli import main

main()

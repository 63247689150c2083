from ganlab.commands.cli import main

main()

from mesh_style.cli import main

main()

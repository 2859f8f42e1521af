from tests.frameset import main

raise SystemExit(main())

from tests.support.frameset import main

raise SystemExit(main())

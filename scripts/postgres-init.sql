-- Each service owns its database (DESIGN.md §1); compose creates giftcode.
CREATE DATABASE wallet;
